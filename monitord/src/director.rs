//! The link to the director's control socket: one blocking [`Client`] with a short timeout,
//! reconnected with exponential backoff when the director goes away.
//!
//! The daemon's loop never waits for the director: a connect to a missing or refusing socket
//! fails at once, a request to a live director is answered in microseconds, and every request
//! is bounded by [`REQUEST_TIMEOUT`]. When a request fails for any reason other than the
//! director refusing it (`Response::Error`), the connection is dropped and the next attempt
//! waits for the backoff ([`BACKOFF_MIN`] doubling up to [`BACKOFF_MAX`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use log::Level;
use lvs_common::event;
use lvs_proto::{Client, ClientOptions, Request, Response, Role};

/// The longest a connect or one request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// First wait before reconnecting.
pub const BACKOFF_MIN: Duration = Duration::from_millis(200);
/// Longest wait between two connect attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Why a request got no useful answer.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Not connected (the director is away; a reconnect is scheduled).
    #[error("not connected to the director")]
    Down,
    /// The director answered with an error (the connection stays).
    #[error("the director refused: {0}")]
    Refused(String),
    /// The connection broke during the request (it is dropped; a reconnect is scheduled).
    #[error("lost the director: {0}")]
    Lost(String),
}

/// What [`DirectorLink::connect_if_due`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connect {
    /// Was connected already.
    Already,
    /// A new connection: the caller re-reads the director's state and re-applies its own.
    Fresh,
    /// Not connected (not due yet, or the attempt failed).
    No,
}

/// The connection to the director, or the plan to make one.
#[derive(Debug)]
pub struct DirectorLink {
    path: PathBuf,
    client: Option<Client>,
    backoff: Duration,
    next_attempt: Instant,
    /// The failure was logged; don't repeat it every attempt.
    reported: bool,
}

impl DirectorLink {
    /// A link to the socket at `path`; the first attempt is due at once.
    pub fn new(path: &Path) -> DirectorLink {
        DirectorLink {
            path: path.to_path_buf(),
            client: None,
            backoff: BACKOFF_MIN,
            next_attempt: Instant::now(),
            reported: false,
        }
    }

    /// The director's socket.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Points the link at another socket (a reload changed `director_socket`).
    pub fn set_path(&mut self, path: &Path) {
        if path != self.path {
            self.path = path.to_path_buf();
            self.client = None;
            self.next_attempt = Instant::now();
        }
    }

    /// Connected now.
    pub fn is_up(&self) -> bool {
        self.client.is_some()
    }

    /// When the next connect attempt is due (for the loop's timeout), if not connected.
    pub fn next_attempt(&self) -> Option<Instant> {
        self.client.is_none().then_some(self.next_attempt)
    }

    /// Connects if not connected and an attempt is due.
    pub fn connect_if_due(&mut self, now: Instant) -> Connect {
        if self.client.is_some() {
            return Connect::Already;
        }
        if now < self.next_attempt {
            return Connect::No;
        }
        let options = ClientOptions {
            timeout: REQUEST_TIMEOUT,
            ..ClientOptions::default()
        };
        match Client::connect_with(&self.path, Role::Monitord, options) {
            Ok(client) => {
                event!(
                    Level::Info,
                    "director_connected",
                    socket = self.path.display()
                );
                self.client = Some(client);
                self.backoff = BACKOFF_MIN;
                self.reported = false;
                Connect::Fresh
            }
            Err(e) => {
                if !self.reported {
                    event!(
                        Level::Warn,
                        "director_unreachable",
                        socket = self.path.display(),
                        error = e,
                        retry_ms = self.backoff.as_millis()
                    );
                    self.reported = true;
                }
                self.schedule(now);
                Connect::No
            }
        }
    }

    fn schedule(&mut self, now: Instant) {
        self.next_attempt = now + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// One request. A broken connection is dropped (logged once as `director_lost`).
    pub fn request(&mut self, request: Request) -> Result<Response, LinkError> {
        let Some(client) = self.client.as_mut() else {
            return Err(LinkError::Down);
        };
        match client.request(request) {
            Ok(Response::Error { message, .. }) => Err(LinkError::Refused(message)),
            Ok(response) => Ok(response),
            Err(e) => {
                event!(
                    Level::Warn,
                    "director_lost",
                    socket = self.path.display(),
                    error = e
                );
                self.client = None;
                self.backoff = BACKOFF_MIN;
                self.schedule(Instant::now());
                Err(LinkError::Lost(e.to_string()))
            }
        }
    }
}
