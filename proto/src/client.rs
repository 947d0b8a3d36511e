//! The blocking client, for command-line tools (`lvsadm`, `lvs-lockctl`) and tests.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, send};

use crate::codec;
use crate::error::{ProtoError, Result};
use crate::frame::{FrameDecoder, FrameLimit};
use crate::message::{
    ClientFrame, Event, Hello, HelloOk, PROTOCOL_VERSION, Request, Response, Role, ServerFrame,
    Topic,
};
use crate::rundir;

/// Client settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    /// How long `connect` and each `request` may take.
    pub timeout: Duration,
    /// Largest frame accepted from the daemon.
    pub frame_limit: FrameLimit,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(5),
            frame_limit: FrameLimit::DEFAULT,
        }
    }
}

/// A connection to one daemon, past the Hello.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    path: PathBuf,
    options: ClientOptions,
    decoder: FrameDecoder,
    /// Frames decoded from a read but not consumed yet.
    frames: VecDeque<ServerFrame>,
    /// Events that arrived while waiting for a response.
    events: VecDeque<Event>,
    next_id: u64,
    server: HelloOk,
}

impl Client {
    /// Connects to the daemon at `socket_path` as `role`, with default options.
    pub fn connect(socket_path: &Path, role: Role) -> Result<Client> {
        Client::connect_with(socket_path, role, ClientOptions::default())
    }

    /// Connects and exchanges Hello / HelloOk.
    pub fn connect_with(socket_path: &Path, role: Role, options: ClientOptions) -> Result<Client> {
        let stream = UnixStream::connect(socket_path).map_err(|e| connect_error(socket_path, e))?;
        let mut client = Client {
            stream,
            path: socket_path.to_path_buf(),
            options,
            decoder: FrameDecoder::new(options.frame_limit),
            frames: VecDeque::new(),
            events: VecDeque::new(),
            next_id: 1,
            server: HelloOk {
                version: 0,
                daemon: String::new(),
            },
        };
        let deadline = Instant::now() + options.timeout;
        let hello = ClientFrame::Hello(Hello {
            version: PROTOCOL_VERSION,
            role,
        });
        // A daemon that refuses us (permission) may close before our Hello is written; its
        // Error frame is still waiting to be read, and says more than EPIPE would.
        let sent = client.send(&hello, deadline);
        match client.read_frame(deadline) {
            Ok(Some(ServerFrame::HelloOk(ok))) => {
                sent?;
                client.server = ok;
                Ok(client)
            }
            Ok(Some(ServerFrame::Error { code, message })) => {
                Err(ProtoError::Remote { code, message })
            }
            Ok(Some(other)) => Err(ProtoError::UnexpectedFrame(format!(
                "{} instead of HelloOk",
                other.kind()
            ))),
            Ok(None) => {
                sent?;
                Err(ProtoError::Timeout {
                    what: "the daemon's HelloOk",
                    after: options.timeout,
                })
            }
            Err(e) => {
                sent?;
                Err(e)
            }
        }
    }

    /// What the daemon said about itself in its HelloOk.
    pub fn server(&self) -> &HelloOk {
        &self.server
    }

    /// The socket this client is connected to.
    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    /// Changes the timeout for later requests.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.options.timeout = timeout;
    }

    /// Sends `request` and waits (up to the timeout) for its response. Events arriving in the
    /// meantime are kept for [`Client::next_event`].
    pub fn request(&mut self, request: Request) -> Result<Response> {
        let deadline = Instant::now() + self.options.timeout;
        let id = self.next_id;
        self.next_id += 1;
        self.send(&ClientFrame::Request { id, request }, deadline)?;
        loop {
            match self.read_frame(deadline)? {
                Some(ServerFrame::Response { id: got, response }) if got == id => {
                    return Ok(response);
                }
                // The answer to an earlier request that timed out: nobody waits for it now.
                Some(ServerFrame::Response { .. }) => {}
                Some(ServerFrame::Event(event)) => self.events.push_back(event),
                Some(ServerFrame::Error { code, message }) => {
                    return Err(ProtoError::Remote { code, message });
                }
                Some(ServerFrame::HelloOk(_)) => {
                    return Err(ProtoError::UnexpectedFrame("a second HelloOk".to_owned()));
                }
                None => {
                    return Err(ProtoError::Timeout {
                        what: "a response",
                        after: self.options.timeout,
                    });
                }
            }
        }
    }

    /// Pings the daemon.
    pub fn ping(&mut self) -> Result<()> {
        let response = self.request(Request::Ping)?;
        expect(response, Response::Pong)
    }

    /// Starts receiving events of `topics`.
    pub fn subscribe(&mut self, topics: &[Topic]) -> Result<()> {
        let response = self.request(Request::Subscribe {
            topics: topics.to_vec(),
        })?;
        expect(response, Response::Ok)
    }

    /// Stops receiving events of `topics` (all of them if empty).
    pub fn unsubscribe(&mut self, topics: &[Topic]) -> Result<()> {
        let response = self.request(Request::Unsubscribe {
            topics: topics.to_vec(),
        })?;
        expect(response, Response::Ok)
    }

    /// The next event, waiting up to `timeout`; `Ok(None)` if none came.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>> {
        if let Some(event) = self.events.pop_front() {
            return Ok(Some(event));
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.read_frame(deadline)? {
                Some(ServerFrame::Event(event)) => return Ok(Some(event)),
                Some(ServerFrame::Response { .. }) => {}
                Some(ServerFrame::Error { code, message }) => {
                    return Err(ProtoError::Remote { code, message });
                }
                Some(ServerFrame::HelloOk(_)) => {
                    return Err(ProtoError::UnexpectedFrame("a second HelloOk".to_owned()));
                }
                None => return Ok(None),
            }
        }
    }

    fn send(&mut self, frame: &ClientFrame, deadline: Instant) -> Result<()> {
        let bytes = codec::to_frame(frame, self.options.frame_limit)?;
        let mut sent = 0;
        while sent < bytes.len() {
            let remaining = remaining(deadline).ok_or(ProtoError::Timeout {
                what: "the daemon to accept our request",
                after: self.options.timeout,
            })?;
            self.stream
                .set_write_timeout(Some(remaining))
                .map_err(|e| ProtoError::io("cannot set the write timeout", e))?;
            // MSG_NOSIGNAL: a daemon that hung up is an error to report, not a SIGPIPE.
            match send(
                self.stream.as_raw_fd(),
                &bytes[sent..],
                MsgFlags::MSG_NOSIGNAL,
            ) {
                Ok(n) => sent += n,
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => {}
                Err(e) => {
                    return Err(ProtoError::io(
                        format!("cannot write to {}", self.path.display()),
                        io::Error::from(e),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The next frame, or `None` at the deadline.
    fn read_frame(&mut self, deadline: Instant) -> Result<Option<ServerFrame>> {
        let mut buf = [0u8; 8192];
        loop {
            if let Some(frame) = self.frames.pop_front() {
                return Ok(Some(frame));
            }
            let Some(remaining) = remaining(deadline) else {
                return Ok(None);
            };
            self.stream
                .set_read_timeout(Some(remaining))
                .map_err(|e| ProtoError::io("cannot set the read timeout", e))?;
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.decoder.finish()?;
                    return Err(ProtoError::Closed);
                }
                Ok(n) => {
                    for body in self.decoder.feed(&buf[..n]) {
                        let frame = codec::decode_body(&body?, self.options.frame_limit)?;
                        self.frames.push_back(frame);
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                // The daemon closed with our unread bytes in its queue: same as a close.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Err(ProtoError::Closed);
                }
                Err(e) => {
                    return Err(ProtoError::io(
                        format!("cannot read from {}", self.path.display()),
                        e,
                    ));
                }
            }
        }
    }
}

/// Time left until `deadline`, `None` once it has passed (a zero timeout means "forever" to
/// the socket options, so it must never reach them).
fn remaining(deadline: Instant) -> Option<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    (!left.is_zero()).then_some(left)
}

fn expect(got: Response, want: Response) -> Result<()> {
    match got {
        r if r == want => Ok(()),
        Response::Error { code, message } => Err(ProtoError::Remote { code, message }),
        other => Err(ProtoError::UnexpectedFrame(format!(
            "response {other:?} where {want:?} was expected"
        ))),
    }
}

/// A connect error that says what to check.
fn connect_error(path: &Path, e: io::Error) -> ProtoError {
    let daemon = path
        .file_stem()
        .and_then(|s| s.to_str())
        .map_or_else(|| "the daemon".to_owned(), rundir::display_name);
    let hint = match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            format!(" (is {daemon} running, with the same run directory?)")
        }
        io::ErrorKind::PermissionDenied => {
            " (only root and the members of the socket's group may connect)".to_owned()
        }
        _ => String::new(),
    };
    ProtoError::io(format!("cannot connect to {}{hint}", path.display()), e)
}
