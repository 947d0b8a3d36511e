//! The check engine: every check of every target on one `mio` event loop.
//!
//! No thread per check and nothing runs one after another: each check has its own timer,
//! starts a non-blocking probe (a connect, a SYN on a shared raw socket ([`syn`]), a datagram,
//! a child process) and is woken by its socket, pipe or pidfd, or by its timeout. A check starts every `interval` at a fixed rate
//! (next start = previous start + interval; `timeout < interval`, so runs never overlap), and
//! with [`EngineOptions::stagger`] the first runs of the targets are spread over their first
//! interval so that 1000 targets do not all fire in the same millisecond.
//!
//! # Using it from a daemon
//!
//! The engine owns its own [`mio::Poll`]. A daemon with its own loop registers the engine's
//! epoll descriptor ([`AsRawFd`]) as a readable [`mio::unix::SourceFd`] in its poll, uses
//! [`Engine::next_timeout`] as (an upper bound of) its poll timeout, and calls
//! `engine.poll(Some(Duration::ZERO), &mut results)` on every turn of its loop (whether or not
//! the engine's token fired: that is cheap, and covers timers and events left over from a full
//! batch). A program with nothing else to do calls `engine.poll(None, ...)` in a loop.
//!
//! ```no_run
//! use std::time::Duration;
//! use lvs_monitord::checks::{Engine, CheckResult};
//! use lvs_monitord::config::Check;
//! use lvs_proto::director::Protocol;
//!
//! let mut engine = Engine::new()?;
//! let server = "192.0.2.11".parse().unwrap();
//! let id = engine.add_target(server, 80, &[Check::default_for(Protocol::Tcp, 80)]);
//! let mut results: Vec<CheckResult> = Vec::new();
//! loop {
//!     engine.poll(None, &mut results)?;
//!     for r in results.drain(..) {
//!         assert_eq!(r.target, id);
//!         println!("check {} ok={} {} ({:?})", r.check, r.ok, r.detail, r.latency);
//!     }
//! }
//! # Ok::<(), std::io::Error>(())
//! ```

pub mod dns;
pub mod http;
pub mod icmp;
mod script;
pub mod syn;
pub mod tls;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use log::Level;
use lvs_common::event;
use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::config::{Check, CheckKind};
use dns::DnsProbe;
use http::HttpProbe;
use icmp::{IcmpEvent, IcmpSocket};
use script::ScriptProbe;
use syn::{SynReply, SynSocket};

pub use tls::AcceptAnyCert;

const ICMP4: Token = Token(0);
const ICMP6: Token = Token(1);
const SYN4: Token = Token(2);
const SYN6: Token = Token(3);
const FIRST_SLOT: usize = 4;
/// SYN probes carry their slot in the upper 24 bits of the sequence number.
const MAX_SYN_SLOT: usize = 1 << 24;
/// Poll events handled per batch.
const EVENTS: usize = 1024;
/// How often a script's exit is polled where pidfds are missing.
const EXIT_POLL: Duration = Duration::from_millis(10);

/// A target (one real server with its checks) of an [`Engine`]. Never reused within an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetId(pub u64);

impl fmt::Display for TargetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The outcome of one run of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// Whose check.
    pub target: TargetId,
    /// Which check: its index in the list given to [`Engine::add_target`].
    pub check: usize,
    /// Passed?
    pub ok: bool,
    /// One line saying what happened: `status 200 OK`, `connect: Connection refused (os error
    /// 111)`, `timeout after 800 ms waiting for the response`, `wrong status: 500 ...`, ...
    pub detail: String,
    /// From the start of the run to its result.
    pub latency: Duration,
}

/// Engine settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineOptions {
    /// Spread the first run of each check over its first interval (default). Off: every
    /// check runs at once when added (tests, one-shot tools).
    pub stagger: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions { stagger: true }
    }
}

#[derive(Debug)]
enum Probe {
    Icmp { v6: bool, seq: u16 },
    Tcp(TcpStream),
    Syn { seq: u32 },
    Http(Box<HttpProbe>),
    Dns(DnsProbe),
    Script(Box<ScriptProbe>),
}

#[derive(Debug)]
struct Slot {
    target: TargetId,
    index: usize,
    addr: IpAddr,
    port: u16,
    check: Arc<Check>,
    /// Timers carry the generation they were set for; any change makes old ones stale.
    generation: u64,
    probe: Option<Probe>,
    /// When this run was due (fixed-rate schedule) and when it really started.
    due: Instant,
    started: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    Start,
    Timeout,
    Tick,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    at: Instant,
    key: usize,
    generation: u64,
    kind: TimerKind,
}

static INSTANCES: AtomicU16 = AtomicU16::new(0);

/// Runs checks. See the module docs.
#[derive(Debug)]
pub struct Engine {
    poll: Poll,
    events: Events,
    options: EngineOptions,
    slots: Slab<Slot>,
    targets: HashMap<TargetId, Vec<usize>>,
    next_target: u64,
    timers: BinaryHeap<Reverse<Timer>>,
    generation: u64,
    /// Low-discrepancy sequence for staggering first runs.
    spread: u64,
    icmp: [Option<IcmpSocket>; 2],
    icmp_ident: u16,
    icmp_seq: u16,
    icmp_waiting: HashMap<(bool, u16), usize>,
    syn: [Option<SynSocket>; 2],
    /// Mixed into SYN sequence numbers, so that they are not guessable.
    syn_secret: u32,
    syn_replies: Vec<SynReply>,
    syn_failed: Vec<(usize, io::Error)>,
    rng: u64,
    tls: tls::TlsConfigs,
    /// Killed scripts not reaped yet.
    zombies: Vec<Child>,
    batch_full: bool,
    tokens: Vec<(Token, bool, bool)>,
}

impl AsRawFd for Engine {
    /// The engine's epoll descriptor: readable when it has something to do.
    fn as_raw_fd(&self) -> RawFd {
        self.poll.as_raw_fd()
    }
}

fn token(key: usize, sub: usize) -> Token {
    Token(FIRST_SLOT + key * 2 + sub)
}

impl Engine {
    /// An engine with default options.
    pub fn new() -> io::Result<Engine> {
        Engine::with_options(EngineOptions::default())
    }

    /// An engine with `options`.
    pub fn with_options(options: EngineOptions) -> io::Result<Engine> {
        let instance = INSTANCES.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ u128::from(pid)
            ^ (u128::from(instance) << 32);
        Ok(Engine {
            poll: Poll::new()?,
            events: Events::with_capacity(EVENTS),
            options,
            slots: Slab::new(),
            targets: HashMap::new(),
            next_target: 1,
            timers: BinaryHeap::new(),
            generation: 0,
            spread: 0,
            icmp: [None, None],
            icmp_ident: u16::try_from(pid & 0xffff).unwrap_or(0) ^ instance.wrapping_mul(0x9e37),
            icmp_seq: 0,
            icmp_waiting: HashMap::new(),
            syn: [None, None],
            syn_secret: u32::try_from((seed >> 64) & 0xffff_ffff).unwrap_or(0) ^ 0x5bd1_e995,
            syn_replies: Vec::new(),
            syn_failed: Vec::new(),
            rng: u64::try_from(seed & u128::from(u64::MAX)).unwrap_or(1) | 1,
            tls: tls::TlsConfigs::default(),
            zombies: Vec::new(),
            batch_full: false,
            tokens: Vec::with_capacity(EVENTS),
        })
    }

    /// Adds a target: `checks` of the server `addr`:`port` (the port is what script checks
    /// see in `LVS_SERVER_PORT`; network checks carry their own). Results name the check by
    /// its index in `checks`.
    pub fn add_target(&mut self, addr: IpAddr, port: u16, checks: &[Check]) -> TargetId {
        let id = TargetId(self.next_target);
        self.next_target += 1;
        let now = Instant::now();
        let mut keys = Vec::with_capacity(checks.len());
        for (index, check) in checks.iter().enumerate() {
            let first = if self.options.stagger {
                self.spread = self.spread.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let frac = (self.spread >> 11) as f64 / (1u64 << 53) as f64;
                now + check.interval.mul_f64(frac)
            } else {
                now
            };
            let generation = self.next_generation();
            let key = self.slots.insert(Slot {
                target: id,
                index,
                addr,
                port,
                check: Arc::new(check.clone()),
                generation,
                probe: None,
                due: first,
                started: first,
            });
            self.timers.push(Reverse(Timer {
                at: first,
                key,
                generation,
                kind: TimerKind::Start,
            }));
            keys.push(key);
        }
        self.targets.insert(id, keys);
        id
    }

    /// Removes a target: its runs in flight are abandoned (scripts killed), no more results
    /// come for it. False if it was not there.
    pub fn remove_target(&mut self, id: TargetId) -> bool {
        let Some(keys) = self.targets.remove(&id) else {
            return false;
        };
        for key in keys {
            let mut slot = self.slots.remove(key);
            if let Some(p) = slot.probe.take() {
                self.cleanup(p, false);
            }
        }
        self.prune_timers();
        true
    }

    /// Drops stale timers from the head of the heap, so that [`Engine::next_timeout`] does
    /// not wake the loop for nothing.
    fn prune_timers(&mut self) {
        while let Some(Reverse(t)) = self.timers.peek() {
            match self.slots.get(t.key) {
                Some(slot) if slot.generation == t.generation => break,
                _ => {
                    self.timers.pop();
                }
            }
        }
    }

    /// Number of targets.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// True without targets.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Forgets cached TLS configurations, so that changed `ca_file`s are read again (call it
    /// on a configuration reload).
    pub fn reload_tls(&mut self) {
        self.tls.clear();
    }

    /// How long until the engine needs [`Engine::poll`] at the latest (`None`: never, no
    /// targets; zero: now).
    pub fn next_timeout(&self) -> Option<Duration> {
        if self.batch_full {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        // Never sooner than MIN_SLEEP unless something is due now (see `run_timers`).
        self.timers.peek().map(|Reverse(t)| {
            let left = t.at.saturating_duration_since(now);
            if left.is_zero() {
                left
            } else {
                left.max(MIN_SLEEP)
            }
        })
    }

    /// Waits up to `timeout` (`None`: until something happens; never beyond the next timer),
    /// handles every ready event and due timer, and appends the results to `out`.
    pub fn poll(
        &mut self,
        timeout: Option<Duration>,
        out: &mut Vec<CheckResult>,
    ) -> io::Result<()> {
        let wait = match (timeout, self.next_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match self.poll.poll(&mut self.events, wait) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        let mut tokens = std::mem::take(&mut self.tokens);
        tokens.clear();
        // `clean`: writable with neither error nor hang-up, i.e. a connect that succeeded, which
        // spares the TCP check a getsockopt(SO_ERROR).
        tokens.extend(self.events.iter().map(|e| {
            let clean = e.is_writable() && !e.is_error() && !e.is_write_closed();
            (e.token(), e.is_writable(), clean)
        }));
        self.batch_full = tokens.len() >= EVENTS;
        for &(t, writable, clean) in &tokens {
            self.dispatch(t, writable, clean, out);
        }
        self.tokens = tokens;
        self.run_timers(out);
        self.reap();
        // Timeouts of probes that finished early are stale: off the head of the heap, so
        // that they do not wake the loop for nothing.
        self.prune_timers();
        Ok(())
    }

    /// For a daemon whose own poll watches the engine's descriptor: `woke` says whether it
    /// reported the descriptor readable. Without it (and without a full batch left over) only
    /// the timers are run, which spares an `epoll_wait` per turn.
    pub fn turn(&mut self, woke: bool, out: &mut Vec<CheckResult>) -> io::Result<()> {
        if woke || self.batch_full {
            return self.poll(Some(Duration::ZERO), out);
        }
        self.run_timers(out);
        self.reap();
        self.prune_timers();
        Ok(())
    }

    fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    fn random_u16(&mut self) -> u16 {
        // xorshift64
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        u16::try_from(x >> 48).unwrap_or(0)
    }

    fn run_timers(&mut self, out: &mut Vec<CheckResult>) {
        let now = Instant::now();
        // Checks due within the next few milliseconds start now, together: with a thousand
        // targets spread over a second, one wake-up serves many of them instead of one each.
        // A check starts at most a tenth of its interval early, so that short intervals
        // keep their rate. Only a wake-up with something due starts checks early: the
        // wake-ups for replies must not nibble at the next batch.
        self.prune_timers();
        let horizon = match self.timers.peek() {
            Some(Reverse(t)) if t.at <= now => now + COALESCE,
            _ => now,
        };
        while let Some(Reverse(t)) = self.timers.peek().copied() {
            if t.at > horizon || (t.at > now && !matches!(t.kind, TimerKind::Start)) {
                break;
            }
            let Some(slot) = self.slots.get(t.key) else {
                self.timers.pop();
                continue;
            };
            if slot.generation != t.generation {
                self.timers.pop();
                continue;
            }
            if t.at > now && t.at > now + (slot.check.interval / 10).min(COALESCE) {
                break;
            }
            self.timers.pop();
            match t.kind {
                TimerKind::Start => {
                    if slot.probe.is_none() {
                        self.start(t.key, t.at, now, out);
                    }
                }
                TimerKind::Timeout => {
                    let stage = match &slot.probe {
                        None => continue,
                        Some(Probe::Icmp { .. }) => "waiting for the echo reply",
                        Some(Probe::Tcp(_)) => "while connecting",
                        Some(Probe::Syn { .. }) => "waiting for the SYN-ACK",
                        Some(Probe::Http(h)) => h.stage(),
                        Some(Probe::Dns(_)) => "waiting for the DNS answer",
                        Some(Probe::Script(_)) => "(script killed)",
                    };
                    let detail = format!(
                        "timeout after {} ms {stage}",
                        slot.check.timeout.as_millis()
                    );
                    self.finish(t.key, false, detail, out);
                }
                TimerKind::Tick => self.progress(t.key, false, false, out),
            }
        }
        self.flush_syns(out);
    }

    /// Sends the SYNs queued by this turn's starts, in batches.
    fn flush_syns(&mut self, out: &mut Vec<CheckResult>) {
        let mut failed = std::mem::take(&mut self.syn_failed);
        for sock in self.syn.iter_mut().flatten() {
            if sock.has_pending() {
                sock.flush(&mut failed);
            }
        }
        for (key, e) in failed.drain(..) {
            self.finish(key, false, format!("sending the SYN: {e}"), out);
        }
        self.syn_failed = failed;
    }

    fn syn_ready(&mut self, v6: bool, out: &mut Vec<CheckResult>) {
        let mut replies = std::mem::take(&mut self.syn_replies);
        replies.clear();
        if let Some(sock) = &mut self.syn[usize::from(v6)]
            && let Err(e) = sock.recv(&mut replies)
        {
            event!(Level::Warn, "syn_receive_failed", error = e);
        }
        for r in &replies {
            let Ok(key) = usize::try_from((r.seq ^ self.syn_secret) >> 8) else {
                continue;
            };
            let Some(slot) = self.slots.get(key) else {
                continue;
            };
            let ours = matches!(slot.probe, Some(Probe::Syn { seq }) if seq == r.seq)
                && slot.addr == r.from.ip()
                && matches!(slot.check.kind, CheckKind::Syn { port } if port == r.from.port());
            if ours {
                let (ok, detail) = if r.open {
                    (true, "SYN-ACK: listening")
                } else {
                    (false, "connect: Connection refused (RST to the SYN)")
                };
                self.finish(key, ok, detail.to_owned(), out);
            }
        }
        self.syn_replies = replies;
    }

    fn start(&mut self, key: usize, due: Instant, now: Instant, out: &mut Vec<CheckResult>) {
        let generation = self.next_generation();
        let (check, addr, port) = {
            let slot = &mut self.slots[key];
            slot.generation = generation;
            slot.due = due;
            slot.started = now;
            (slot.check.clone(), slot.addr, slot.port)
        };
        let probe = match self.open_probe(key, &check, addr, port) {
            Ok(p) => p,
            Err(detail) => {
                self.finish(key, false, detail, out);
                return;
            }
        };
        let needs_tick = matches!(&probe, Probe::Script(s) if s.pidfd.is_none());
        self.slots[key].probe = Some(probe);
        self.timers.push(Reverse(Timer {
            at: now + check.timeout,
            key,
            generation,
            kind: TimerKind::Timeout,
        }));
        if needs_tick {
            self.push_tick(key, generation, now);
        }
    }

    fn push_tick(&mut self, key: usize, generation: u64, now: Instant) {
        self.timers.push(Reverse(Timer {
            at: now + EXIT_POLL,
            key,
            generation,
            kind: TimerKind::Tick,
        }));
    }

    fn open_probe(
        &mut self,
        key: usize,
        check: &Check,
        addr: IpAddr,
        port: u16,
    ) -> Result<Probe, String> {
        let registry = self.poll.registry();
        let rw = Interest::READABLE | Interest::WRITABLE;
        match &check.kind {
            CheckKind::Icmp => {
                let v6 = addr.is_ipv6();
                let fam = usize::from(v6);
                if self.icmp[fam].is_none() {
                    let sock = IcmpSocket::open(v6, self.icmp_ident).map_err(|e| e.to_string())?;
                    let t = if v6 { ICMP6 } else { ICMP4 };
                    registry
                        .register(&mut SourceFd(&sock.as_raw_fd()), t, Interest::READABLE)
                        .map_err(|e| format!("registering the ICMP socket: {e}"))?;
                    self.icmp[fam] = Some(sock);
                }
                let mut seq = self.icmp_seq;
                let mut tries = 0u32;
                while self.icmp_waiting.contains_key(&(v6, seq)) {
                    seq = seq.wrapping_add(1);
                    tries += 1;
                    if tries > 0xffff {
                        return Err("too many ICMP requests in flight".into());
                    }
                }
                self.icmp_seq = seq.wrapping_add(1);
                if let Some(sock) = &self.icmp[fam] {
                    sock.send(addr, seq)
                        .map_err(|e| format!("sending the echo request: {e}"))?;
                }
                self.icmp_waiting.insert((v6, seq), key);
                Ok(Probe::Icmp { v6, seq })
            }
            CheckKind::Tcp { port } => {
                let mut s = TcpStream::connect(SocketAddr::new(addr, *port))
                    .map_err(|e| format!("connect: {e}"))?;
                registry
                    .register(&mut s, token(key, 0), Interest::WRITABLE)
                    .map_err(|e| format!("register: {e}"))?;
                Ok(Probe::Tcp(s))
            }
            CheckKind::Syn { port } => {
                if key >= MAX_SYN_SLOT {
                    return Err("too many checks for SYN probes".into());
                }
                let v6 = addr.is_ipv6();
                let fam = usize::from(v6);
                if self.syn[fam].is_none() {
                    let sock = SynSocket::open(v6).map_err(|e| format!("SYN probe: {e}"))?;
                    let t = if v6 { SYN6 } else { SYN4 };
                    registry
                        .register(&mut SourceFd(&sock.as_raw_fd()), t, Interest::READABLE)
                        .map_err(|e| format!("registering the SYN socket: {e}"))?;
                    self.syn[fam] = Some(sock);
                }
                let generation = self.slots[key].generation;
                // key < MAX_SYN_SLOT (24 bits): the shift loses nothing.
                let slot = u32::try_from(key).unwrap_or(0) << 8;
                let run = u32::try_from(generation & 0xff).unwrap_or(0);
                let seq = self.syn_secret ^ (slot | run);
                if let Some(sock) = &mut self.syn[fam] {
                    sock.queue(key, SocketAddr::new(addr, *port), seq, Instant::now())
                        .map_err(|e| format!("no route to {addr}: {e}"))?;
                }
                Ok(Probe::Syn { seq })
            }
            CheckKind::Http(h) => {
                let mut p = HttpProbe::start(h, addr, None).map_err(|e| format!("connect: {e}"))?;
                registry
                    .register(&mut p.stream, token(key, 0), rw)
                    .map_err(|e| format!("register: {e}"))?;
                Ok(Probe::Http(Box::new(p)))
            }
            CheckKind::Https(h) => {
                let config = self.tls.get(h)?;
                let name = tls::server_name(h, addr)?;
                let mut p = HttpProbe::start(h, addr, Some((config, name)))
                    .map_err(|e| format!("connect: {e}"))?;
                self.poll
                    .registry()
                    .register(&mut p.stream, token(key, 0), rw)
                    .map_err(|e| format!("register: {e}"))?;
                Ok(Probe::Http(Box::new(p)))
            }
            CheckKind::Dns(d) => {
                let id = self.random_u16();
                let mut p = DnsProbe::start(d, SocketAddr::new(addr, d.port), id)
                    .map_err(|e| format!("DNS query: {e}"))?;
                self.poll
                    .registry()
                    .register(&mut p.socket, token(key, 0), Interest::READABLE)
                    .map_err(|e| format!("register: {e}"))?;
                Ok(Probe::Dns(p))
            }
            CheckKind::Script(s) => {
                let p = ScriptProbe::start(s, addr, port)
                    .map_err(|e| format!("starting {}: {e}", s.command.display()))?;
                let registry = self.poll.registry();
                let reg = registry
                    .register(
                        &mut SourceFd(&p.out.as_raw_fd()),
                        token(key, 0),
                        Interest::READABLE,
                    )
                    .and_then(|()| match &p.pidfd {
                        Some(fd) => registry.register(
                            &mut SourceFd(&fd.as_raw_fd()),
                            token(key, 1),
                            Interest::READABLE,
                        ),
                        None => Ok(()),
                    });
                if let Err(e) = reg {
                    if let Some(child) = p.kill() {
                        self.zombies.push(child);
                    }
                    return Err(format!("register: {e}"));
                }
                Ok(Probe::Script(Box::new(p)))
            }
        }
    }

    fn dispatch(&mut self, t: Token, writable: bool, clean: bool, out: &mut Vec<CheckResult>) {
        if t == ICMP4 || t == ICMP6 {
            self.icmp_ready(t == ICMP6, out);
            return;
        }
        if t == SYN4 || t == SYN6 {
            self.syn_ready(t == SYN6, out);
            return;
        }
        let key = (t.0 - FIRST_SLOT) / 2;
        self.progress(key, writable, clean, out);
    }

    /// Lets the probe of slot `key` make progress; finishes it when it is decided.
    fn progress(&mut self, key: usize, writable: bool, clean: bool, out: &mut Vec<CheckResult>) {
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        let check = slot.check.clone();
        let generation = slot.generation;
        let verdict = match (&mut slot.probe, &check.kind) {
            (Some(Probe::Tcp(s)), _) => tcp_ready(s, writable, clean),
            (Some(Probe::Http(p)), CheckKind::Http(h) | CheckKind::Https(h)) => p.ready(h),
            (Some(Probe::Dns(p)), CheckKind::Dns(d)) => p.ready(d),
            (Some(Probe::Script(p)), _) => {
                let v = p.ready();
                if v.is_none() && p.pidfd.is_none() {
                    self.push_tick(key, generation, Instant::now());
                }
                v
            }
            _ => None,
        };
        if let Some((ok, detail)) = verdict {
            self.finish(key, ok, detail, out);
        }
    }

    fn icmp_ready(&mut self, v6: bool, out: &mut Vec<CheckResult>) {
        loop {
            let Some(sock) = &self.icmp[usize::from(v6)] else {
                return;
            };
            let ev = match sock.recv() {
                Ok(None) => return,
                Ok(Some(None)) => continue,
                Ok(Some(Some(ev))) => ev,
                Err(e) => {
                    event!(Level::Warn, "icmp_receive_failed", error = e);
                    return;
                }
            };
            let (seq, peer, verdict) = match ev {
                IcmpEvent::Reply { from, seq } => (seq, from, (true, "echo reply".to_owned())),
                IcmpEvent::Unreachable { to, seq, kind } => (
                    seq,
                    to,
                    (
                        false,
                        format!(
                            "destination unreachable (ICMP type {} code {})",
                            kind.0, kind.1
                        ),
                    ),
                ),
            };
            let Some(&key) = self.icmp_waiting.get(&(v6, seq)) else {
                continue;
            };
            if self.slots.get(key).is_some_and(|s| s.addr == peer) {
                self.finish(key, verdict.0, verdict.1, out);
            }
        }
    }

    /// Releases what a probe holds. `passed`: a TCP connect that succeeded is closed with a
    /// reset (no TIME_WAIT left on either side for a probe that sent nothing).
    fn cleanup(&mut self, probe: Probe, passed: bool) {
        let registry = self.poll.registry();
        match probe {
            Probe::Icmp { v6, seq } => {
                self.icmp_waiting.remove(&(v6, seq));
            }
            // Sockets leave the epoll set when they are closed (nobody else holds them), so
            // they are just dropped: one system call less per check.
            Probe::Tcp(s) => {
                if passed {
                    let _ = nix::sys::socket::setsockopt(
                        &s,
                        nix::sys::socket::sockopt::Linger,
                        &libc::linger {
                            l_onoff: 1,
                            l_linger: 0,
                        },
                    );
                }
                drop(s);
            }
            // Nothing held: a SYN sent is answered by the peer and reset by our kernel.
            Probe::Syn { .. } => {}
            Probe::Http(p) => drop(p),
            Probe::Dns(p) => drop(p),
            Probe::Script(p) => {
                let _ = registry.deregister(&mut SourceFd(&p.out.as_raw_fd()));
                if let Some(fd) = &p.pidfd {
                    let _ = registry.deregister(&mut SourceFd(&fd.as_raw_fd()));
                }
                if let Some(child) = p.kill() {
                    self.zombies.push(child);
                }
            }
        }
    }

    fn finish(&mut self, key: usize, ok: bool, detail: String, out: &mut Vec<CheckResult>) {
        let now = Instant::now();
        let generation = self.next_generation();
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        slot.generation = generation;
        let probe = slot.probe.take();
        let (target, index, started, addr) = (slot.target, slot.index, slot.started, slot.addr);
        let mut next = slot.due + slot.check.interval;
        if next < now {
            // We fell behind (a stalled loop): start again now rather than in a burst.
            next = now;
        }
        if let Some(Probe::Script(p)) = &probe {
            let (output, dropped) = p.output();
            event!(
                Level::Debug,
                "script_output",
                server = addr,
                command = %slot.check.kind,
                ok = ok,
                output = output.trim(),
                dropped_bytes = dropped
            );
        }
        if let Some(p) = probe {
            self.cleanup(p, ok);
        }
        self.timers.push(Reverse(Timer {
            at: next,
            key,
            generation,
            kind: TimerKind::Start,
        }));
        out.push(CheckResult {
            target,
            check: index,
            ok,
            detail,
            latency: now.saturating_duration_since(started),
        });
    }

    fn reap(&mut self) {
        self.zombies
            .retain_mut(|c| matches!(c.try_wait(), Ok(None)));
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let keys: Vec<usize> = self.slots.iter().map(|(k, _)| k).collect();
        for key in keys {
            if let Some(p) = self.slots[key].probe.take() {
                self.cleanup(p, false);
            }
        }
        // Killed with SIGKILL: a blocking wait is short.
        for mut c in self.zombies.drain(..) {
            let _ = c.wait();
        }
    }
}

/// How early a check may start (at most a tenth of its interval) so that checks due close
/// together share one wake-up: with a thousand checks a second, 40 wake-ups instead of 1000.
const COALESCE: Duration = Duration::from_millis(25);
/// The shortest sleep when nothing is due yet.
const MIN_SLEEP: Duration = Duration::from_millis(10);

fn tcp_ready(s: &TcpStream, writable: bool, clean: bool) -> Option<(bool, String)> {
    if clean {
        return Some((true, "connected".into()));
    }
    match s.take_error() {
        Ok(Some(e)) | Err(e) => return Some((false, format!("connect: {e}"))),
        Ok(None) => {}
    }
    // Writable with no error means connected (connect(2)); otherwise ask.
    if writable {
        return Some((true, "connected".into()));
    }
    match s.peer_addr() {
        Ok(_) => Some((true, "connected".into())),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => None,
        Err(e) => Some((false, format!("connect: {e}"))),
    }
}
