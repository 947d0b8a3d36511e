//! The one reconnecting client of the director's control socket: lvs-monitord,
//! lvs-heartbeatd and lvs-webmon's collector each hold a [`DirectorLink`].
//!
//! A link is a blocking [`Client`] (Hello and version check included) that may be absent:
//!
//! - **Connecting.** [`DirectorLink::connect_if_due`] tries when an attempt is due. A failed
//!   attempt schedules the next one after the back-off, which starts at
//!   [`LinkOptions::backoff_min`] and doubles up to [`LinkOptions::backoff_max`]; a zero
//!   back-off makes every call an attempt, for owners that pace themselves (heartbeatd's
//!   sync poll, webmon's poll interval). A connect to a missing or refusing socket fails at
//!   once, so an owner's loop never waits for an absent director.
//! - **Requests.** Each one is bounded by [`LinkOptions::timeout`]. An error the director
//!   answers ([`LinkError::Refused`]) leaves the connection up; any other failure drops it
//!   ([`LinkError::Lost`]) and the next attempt is due after `backoff_min`.
//! - **Restating.** A new connection may be a restarted director that forgot what it was told:
//!   [`Connect::Fresh`] says exactly that, and the owner tells it its state again
//!   (monitord its verdicts, heartbeatd its role, webmon its event subscription).
//! - **Reporting.** The link comes up, cannot be made (once until it succeeds again) or breaks:
//!   each is handed to [`LinkOptions::report`] as a [`LinkReport`];
//!   [`log_director_link`] writes them as the `director_connected`, `director_unreachable`
//!   and `director_lost` events (`docs/LOGGING.md`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use log::Level;

use crate::client::{Client, ClientOptions};
use crate::error::ProtoError;
use crate::message::{ErrorCode, Event, Request, Response, Role};

/// How a link connects, waits and reports.
#[derive(Debug, Clone, Copy)]
pub struct LinkOptions {
    /// The role its Hello announces.
    pub role: Role,
    /// The longest a connect or one request may take.
    pub timeout: Duration,
    /// The wait before the first reconnect attempt (zero: every call may attempt).
    pub backoff_min: Duration,
    /// The longest wait between two connect attempts.
    pub backoff_max: Duration,
    /// Told when the link comes up, cannot be made or breaks.
    pub report: fn(&LinkReport<'_>),
}

/// A change of the link, for its owner to log or show.
#[derive(Debug)]
pub enum LinkReport<'a> {
    /// Connected (Hello exchanged).
    Connected {
        /// The director's socket.
        socket: &'a Path,
    },
    /// A connect attempt failed; reported once until an attempt succeeds.
    Unreachable {
        /// The director's socket.
        socket: &'a Path,
        /// Why.
        error: &'a ProtoError,
        /// When the next attempt is due (zero: at the owner's next call).
        retry: Duration,
    },
    /// The connection broke during a request.
    Lost {
        /// The director's socket.
        socket: &'a Path,
        /// Why.
        error: &'a ProtoError,
    },
}

/// Logs a [`LinkReport`] as the `director_*` events of `docs/LOGGING.md`.
pub fn log_director_link(report: &LinkReport<'_>) {
    match report {
        LinkReport::Connected { socket } => {
            crate::event!(Level::Info, "director_connected", socket = socket.display());
        }
        LinkReport::Unreachable {
            socket,
            error,
            retry,
        } if retry.is_zero() => crate::event!(
            Level::Warn,
            "director_unreachable",
            socket = socket.display(),
            error = error
        ),
        LinkReport::Unreachable {
            socket,
            error,
            retry,
        } => crate::event!(
            Level::Warn,
            "director_unreachable",
            socket = socket.display(),
            error = error,
            retry_ms = retry.as_millis()
        ),
        LinkReport::Lost { socket, error } => crate::event!(
            Level::Warn,
            "director_lost",
            socket = socket.display(),
            error = error
        ),
    }
}

/// Reports nothing: for an owner that shows the link's state its own way.
pub fn ignore_link_report(_: &LinkReport<'_>) {}

/// Why a request got no useful answer.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Not connected (the director is away; a reconnect is scheduled).
    #[error("not connected to the director")]
    Down,
    /// The director answered with an error (the connection stays).
    #[error("the director refused: {message}")]
    Refused {
        /// Its error code.
        code: ErrorCode,
        /// Its message.
        message: String,
    },
    /// The connection broke during the request (it is dropped; a reconnect is scheduled).
    #[error("lost the director: {0}")]
    Lost(ProtoError),
}

/// What [`DirectorLink::connect_if_due`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connect {
    /// Was connected already.
    Already,
    /// A new connection: the owner re-reads the director's state and restates its own.
    Fresh,
    /// Not connected (not due yet, or the attempt failed).
    No,
}

/// The connection to the director, or the plan to make one.
#[derive(Debug)]
pub struct DirectorLink {
    path: PathBuf,
    options: LinkOptions,
    client: Option<Client>,
    backoff: Duration,
    next_attempt: Instant,
    /// Why the last attempt failed, until one succeeds (it is reported once).
    unreachable: Option<ProtoError>,
}

impl DirectorLink {
    /// A link to the socket at `path`; the first attempt is due at once.
    pub fn new(path: &Path, options: LinkOptions) -> DirectorLink {
        DirectorLink {
            path: path.to_path_buf(),
            options,
            client: None,
            backoff: options.backoff_min,
            next_attempt: Instant::now(),
            unreachable: None,
        }
    }

    /// The director's socket.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Points the link at another socket (a reload changed it): disconnects, and the first
    /// attempt on the new socket is due at once (its failure is reported afresh).
    pub fn set_path(&mut self, path: &Path) {
        if path != self.path {
            self.path = path.to_path_buf();
            self.client = None;
            self.next_attempt = Instant::now();
            self.unreachable = None;
        }
    }

    /// Connected now.
    pub fn is_up(&self) -> bool {
        self.client.is_some()
    }

    /// When the next connect attempt is due (for the owner's loop timeout), if not connected.
    pub fn next_attempt(&self) -> Option<Instant> {
        self.client.is_none().then_some(self.next_attempt)
    }

    /// Why the last connect attempt failed, while not connected since.
    pub fn unreachable_reason(&self) -> Option<&ProtoError> {
        self.unreachable.as_ref()
    }

    /// Connects if not connected and an attempt is due.
    pub fn connect_if_due(&mut self, now: Instant) -> Connect {
        if self.client.is_some() {
            return Connect::Already;
        }
        if now < self.next_attempt {
            return Connect::No;
        }
        let client_options = ClientOptions {
            timeout: self.options.timeout,
            ..ClientOptions::default()
        };
        match Client::connect_with(&self.path, self.options.role, client_options) {
            Ok(client) => {
                (self.options.report)(&LinkReport::Connected { socket: &self.path });
                self.client = Some(client);
                self.backoff = self.options.backoff_min;
                self.unreachable = None;
                Connect::Fresh
            }
            Err(error) => {
                if self.unreachable.is_none() {
                    (self.options.report)(&LinkReport::Unreachable {
                        socket: &self.path,
                        error: &error,
                        retry: self.backoff,
                    });
                }
                self.unreachable = Some(error);
                self.schedule(now);
                Connect::No
            }
        }
    }

    fn schedule(&mut self, now: Instant) {
        self.next_attempt = now + self.backoff;
        self.backoff = (self.backoff * 2).min(self.options.backoff_max);
    }

    /// One request, on the connection there is (this never connects: see
    /// [`DirectorLink::connect_if_due`]).
    pub fn request(&mut self, request: Request) -> Result<Response, LinkError> {
        let Some(client) = self.client.as_mut() else {
            return Err(LinkError::Down);
        };
        match client.request(request) {
            Ok(Response::Error { code, message }) => Err(LinkError::Refused { code, message }),
            Ok(response) => Ok(response),
            Err(error) => Err(self.lose(error)),
        }
    }

    /// The next event of a subscription, waiting up to `timeout`; `Ok(None)` if none came.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, LinkError> {
        let Some(client) = self.client.as_mut() else {
            return Err(LinkError::Down);
        };
        client.next_event(timeout).map_err(|error| self.lose(error))
    }

    /// Drops a broken connection; the next attempt is due after the shortest back-off.
    fn lose(&mut self, error: ProtoError) -> LinkError {
        (self.options.report)(&LinkReport::Lost {
            socket: &self.path,
            error: &error,
        });
        self.client = None;
        self.backoff = self.options.backoff_min;
        self.schedule(Instant::now());
        LinkError::Lost(error)
    }
}
