//! The signals a daemon answers, delivered as readiness events in its own `mio::Poll`.
//!
//! | signal | [`Signal`] | what the daemon does |
//! | --- | --- | --- |
//! | `SIGHUP` | [`Signal::Reload`] | re-read the config; apply it only if it is valid |
//! | `SIGTERM`, `SIGINT` | [`Signal::Stop`] | stop cleanly, undoing what it changed in the system |
//! | `SIGUSR1` | [`Signal::Dump`] | log its state (one event per line) |
//!
//! The handlers only write to a self-pipe (signal-hook); nothing runs in signal context. Keep
//! the [`Signals`] value for the daemon's whole life: once dropped, these signals are
//! ignored instead of taking their default action.
//!
//! ```no_run
//! use lvs_common::signals::{self, Signal, Signals};
//! use mio::{Events, Poll, Token};
//!
//! const SIGNALS: Token = Token(0);
//! let mut poll = Poll::new()?;
//! let mut signals = Signals::new(poll.registry(), SIGNALS)?;
//! let mut events = Events::with_capacity(64);
//! 'run: loop {
//!     signals::poll(&mut poll, &mut events, None)?;
//!     for event in events.iter() {
//!         if event.token() == SIGNALS {
//!             for signal in signals.pending() {
//!                 match signal {
//!                     Signal::Stop => break 'run,
//!                     Signal::Reload => { /* ctx.reload() */ }
//!                     Signal::Dump => { /* log state */ }
//!                 }
//!             }
//!         }
//!     }
//! }
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fmt;
use std::io;
use std::time::Duration;

use mio::{Events, Interest, Poll, Registry, Token};
use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};

/// What a received signal asks of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Signal {
    /// `SIGHUP`: reload the configuration.
    Reload,
    /// `SIGTERM` or `SIGINT`: stop.
    Stop,
    /// `SIGUSR1`: log a dump of the state.
    Dump,
}

impl Signal {
    /// The meaning of signal number `raw`, if it is one we handle.
    pub fn from_raw(raw: i32) -> Option<Signal> {
        match raw {
            SIGHUP => Some(Signal::Reload),
            SIGTERM | SIGINT => Some(Signal::Stop),
            SIGUSR1 => Some(Signal::Dump),
            _ => None,
        }
    }

    /// The word used in `event=signal ... action=<word>`.
    pub fn action(self) -> &'static str {
        match self {
            Signal::Reload => "reload",
            Signal::Stop => "stop",
            Signal::Dump => "dump",
        }
    }
}

/// The handled signals, registered in a `mio` registry under one token.
pub struct Signals {
    inner: signal_hook_mio::v1_0::Signals,
}

impl fmt::Debug for Signals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signals").finish_non_exhaustive()
    }
}

impl Signals {
    /// The signal numbers handled, in the order of the table above.
    pub const HANDLED: [i32; 4] = [SIGHUP, SIGTERM, SIGINT, SIGUSR1];

    /// Installs the handlers and registers their self-pipe in `registry` as `token`
    /// (readable).
    pub fn new(registry: &Registry, token: Token) -> io::Result<Signals> {
        let mut inner = signal_hook_mio::v1_0::Signals::new(Self::HANDLED)?;
        registry.register(&mut inner, token, Interest::READABLE)?;
        Ok(Signals { inner })
    }

    /// The signals received since the last call (each kind at most once, in arbitrary order;
    /// a daemon that sees [`Signal::Stop`] should stop whatever else came). Each one is logged
    /// as `event=signal signal=SIGHUP action=reload` at info level. Call it whenever the
    /// token is readable; it never blocks.
    pub fn pending(&mut self) -> Vec<Signal> {
        let mut out = Vec::new();
        for raw in self.inner.pending() {
            let Some(signal) = Signal::from_raw(raw) else {
                continue;
            };
            crate::event!(
                log::Level::Info,
                "signal",
                signal = signal_name(raw),
                action = signal.action()
            );
            if !out.contains(&signal) {
                out.push(signal);
            }
        }
        out
    }
}

/// `SIGHUP` for 1, and so on; `SIG<n>` for numbers we do not name.
pub fn signal_name(raw: i32) -> String {
    match nix::sys::signal::Signal::try_from(raw) {
        Ok(s) => s.as_str().to_owned(),
        Err(_) => format!("SIG{raw}"),
    }
}

/// `poll.poll(events, timeout)`, except that an interruption by a signal (`EINTR`) is not an
/// error: it returns with no events, and the signal shows up as readiness on the next call.
pub fn poll(poll: &mut Poll, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
    match poll.poll(events, timeout) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => {
            events.clear();
            Ok(())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn mapping() {
        assert_eq!(Signal::from_raw(SIGHUP), Some(Signal::Reload));
        assert_eq!(Signal::from_raw(SIGTERM), Some(Signal::Stop));
        assert_eq!(Signal::from_raw(SIGINT), Some(Signal::Stop));
        assert_eq!(Signal::from_raw(SIGUSR1), Some(Signal::Dump));
        assert_eq!(Signal::from_raw(signal_hook::consts::SIGUSR2), None);
        assert_eq!(signal_name(SIGHUP), "SIGHUP");
        assert_eq!(signal_name(1000), "SIG1000");
    }

    /// Raises real signals at this process and waits for them through mio, with a deadline.
    /// (The only test in this crate that touches signal dispositions.)
    #[test]
    fn delivered_through_mio() {
        const TOKEN: Token = Token(7);
        let mut poll = Poll::new().unwrap();
        let mut signals = Signals::new(poll.registry(), TOKEN).unwrap();
        let mut events = Events::with_capacity(8);

        // Raises `raw` (each in order) and collects what arrives until `want` is complete.
        let mut deliver = |raw: &[i32], want: &[Signal]| {
            for &r in raw {
                signal_hook::low_level::raise(r).unwrap();
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut got = Vec::new();
            while !want.iter().all(|w| got.contains(w)) {
                let left = deadline.saturating_duration_since(Instant::now());
                assert!(
                    !left.is_zero(),
                    "wanted {want:?}, got only {got:?} within 10 s"
                );
                self::poll(&mut poll, &mut events, Some(left)).unwrap();
                if events.iter().any(|e| e.token() == TOKEN) {
                    got.extend(signals.pending());
                }
            }
            got.sort();
            got
        };
        assert_eq!(deliver(&[SIGHUP], &[Signal::Reload]), [Signal::Reload]);
        assert_eq!(deliver(&[SIGUSR1], &[Signal::Dump]), [Signal::Dump]);
        // Two at once: nothing lost.
        assert_eq!(
            deliver(&[SIGHUP, SIGUSR1], &[Signal::Reload, Signal::Dump]),
            [Signal::Reload, Signal::Dump]
        );
    }
}
