//! The time the alert rules run on, injectable so that tests can move it by hand.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A monotonic clock for the deduplication, flapping and rate-limit rules.
///
/// The [`Alerter`](crate::Alerter) thread asks it for the time; [`SystemClock`] is the real
/// one, [`ManualClock`] the one tests move by hand.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> Instant;

    /// The longest the alerter thread may sleep before it looks at the clock again. A real
    /// clock wakes the thread exactly when the next rule fires; a manual clock cannot wake
    /// anybody when it is moved, so the thread polls it this often.
    fn max_sleep(&self) -> Duration {
        Duration::from_secs(3600)
    }
}

/// [`Instant::now`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that stands still until [`ManualClock::advance`] moves it.
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    offset: Mutex<Duration>,
}

impl ManualClock {
    /// A clock standing at an arbitrary instant.
    pub fn new() -> ManualClock {
        ManualClock {
            start: Instant::now(),
            offset: Mutex::new(Duration::ZERO),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut offset = self.offset.lock().unwrap_or_else(|e| e.into_inner());
        *offset += by;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + *self.offset.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn max_sleep(&self) -> Duration {
        Duration::from_millis(5)
    }
}
